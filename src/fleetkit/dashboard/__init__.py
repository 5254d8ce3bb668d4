"""The Streamlit dashboard (`fleet dashboard`): the fleet at a glance, safe to expose."""
