"""Built-in backends. Each is one module, registered in feldspar.models.registry."""
