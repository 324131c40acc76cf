"""The app's screens: home (launcher + recent runs), dashboard, runs viewer, dialogs."""
