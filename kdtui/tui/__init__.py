"""The Textual app: launcher, live dashboard and runs viewer.

Imported only by the commands that open the app, so ``kdtui --help`` never loads Textual.
The app reads runs through the run store (:mod:`kdtui.store`) and starts training
as a separate process (:mod:`kdtui.tui.process`); it never imports the engine's trainer.
"""
