"""The subcommands behind the scripts: arguments in, files read and written, reports out."""
