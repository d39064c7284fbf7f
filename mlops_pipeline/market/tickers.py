"""What a ticker symbol may look like, for team overlays and imported files alike."""

# A letter, then up to 9 letters, digits or '.'; no '-', since tickers are parts of order ids and
# registered model names (``<team>-<TICKER>``).
TICKER_PATTERN = r"^[A-Z][A-Z0-9.]{0,9}$"
