from tests.backends.local_helpers import local_servers as local_servers
from tests.backends.local_helpers import sqlite_local_servers as sqlite_local_servers
