"""Model monitoring: data drift against the champion's training window, live prediction performance
against the naive forecast, evidently snapshots in each team's evidently project with dashboards
over time, and retraining recommendations.

evidently and mlflow are imported inside the functions that need them, never at module import.
"""
