"""Competition between teams: backtests of the champions' out-of-sample predictions, the leaderboard,
config diffs and the pure pieces of the replay (trading-day ranges)."""
