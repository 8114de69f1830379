"""The wizard's screens: one Screen per step (wizard.md §3-§8), dialogs and shared widgets."""
