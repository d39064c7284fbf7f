"""Competition between teams: backtests of the champions' out-of-sample predictions, the leaderboard
and config diffs."""
