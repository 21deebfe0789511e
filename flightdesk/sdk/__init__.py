"""The strategy SDK: Strategy, signal policies and features (re-exported by flightdesk)."""
