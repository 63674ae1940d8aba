from tests.unit.store.fixtures import pg_server, store, store_url

__all__ = ["pg_server", "store", "store_url"]
