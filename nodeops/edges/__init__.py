"""The edges: the only modules that touch the world outside the operator's process.

One module per kind of edge (ssh, http, postgres, aws, proc); the rest of the engine imports these and never
fabric, paramiko, urllib.request, http.client, psycopg, boto3 or subprocess itself
(tests/unit/test_imports.py checks it).
"""
