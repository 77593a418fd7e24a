"""The bodies of the commands: ``index``, ``verify``, ``train``, ``match``, each one
function the CLI calls, with the checks a command makes before it loads a model."""
