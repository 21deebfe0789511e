"""The CLI commands, one module each (registered in ``flightdesk.cli.COMMANDS``)."""
