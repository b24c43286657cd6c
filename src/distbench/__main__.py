from distbench.cli import app

app(prog_name="distbench")
