"""notecoder's pipeline definitions (config.cfg and rule files), installed as package
data ``notecoder.pipelines``: a wheel carries them, and nothing reads the checkout."""
