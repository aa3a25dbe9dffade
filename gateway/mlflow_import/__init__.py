"""``mlgate import-mlflow``: copy an MLflow tracking database, its artifacts and its basic-auth users into mlgate.

Reading MLflow's schema lives here (it composes tracking and auth); every write goes through tracking's
tables and store functions and auth's store and grant functions.
"""
