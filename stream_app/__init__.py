"""stream_app package."""
