"""Streamlit review app."""
