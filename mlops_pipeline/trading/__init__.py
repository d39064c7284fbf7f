"""Paper trading: strategies as pure functions, sizing and risk limits, order submission with
deterministic client order ids, and reconciliation of the broker's state into a journal."""
