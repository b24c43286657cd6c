from tests.backends.local_helpers import local_servers as local_servers
