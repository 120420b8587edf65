"""Running workflows without ComfyUI: UI-to-API conversion, core-node stand-ins, a runner, the CLI."""
