from darkroom.cli.main import app

app(prog_name="darkroom")
