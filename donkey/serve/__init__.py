"""`donkey serve`: a local web page over the same runtime as `donkey animate`.

`service` owns the model and the work (no web library needed, so it is testable on its own);
`page` lays out the Gradio page around it; `examples` lists the bundled inputs.
"""
