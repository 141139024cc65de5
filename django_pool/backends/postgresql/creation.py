"""Test database creation that closes the pool whenever the database it points at changes."""

from django.db.backends.postgresql.creation import DatabaseCreation as PostgresDatabaseCreation


class DatabaseCreation(PostgresDatabaseCreation):
    """Close the pool around test database creation and destruction."""

    def create_test_db(self, *args, **kwargs):
        # Idle pooled connections to the main database would block CREATE DATABASE ...
        # TEMPLATE and would outlive the switch of NAME to the test database.
        self.connection.close_pool()
        return super().create_test_db(*args, **kwargs)

    def destroy_test_db(self, *args, **kwargs):
        # Closed before DROP DATABASE ("being accessed by other users") and before NAME
        # switches back, also when keepdb skips the drop.
        self.connection.close()
        self.connection.close_pool()
        return super().destroy_test_db(*args, **kwargs)
