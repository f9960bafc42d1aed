"""Space-to-ground link emulator and the command protocol that survives it."""
