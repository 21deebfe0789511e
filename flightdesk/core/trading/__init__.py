"""The trading path: risk, orders, matching, broker, portfolio, trader."""
