"""Optional password protection of the dashboard (``SENTINEL_DASHBOARD__PASSWORD``).

Without a password set the page is open, which is why the dashboard binds to loopback by
default. With one, nothing is read from Prometheus, Kafka or the registry before the visitor
has typed it; the comparison takes constant time.

>>> from pydantic import SecretStr
>>> password_matches("s3cret", SecretStr("s3cret")), password_matches("guess", SecretStr("s3cret"))
(True, False)
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr

SESSION_KEY = "sentinel_dashboard_authenticated"


def password_matches(given: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def require_password(expected: SecretStr | None) -> None:
    """Stop the page here until the session has given the password (Streamlit)."""
    import streamlit as st

    if expected is None or not expected.get_secret_value():  # unset, or set empty in compose
        return
    if st.session_state.get(SESSION_KEY) is True:
        return
    st.title("Sentinel: fraud scoring monitor")
    with st.form("login"):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if password_matches(given, expected):
            st.session_state[SESSION_KEY] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()
