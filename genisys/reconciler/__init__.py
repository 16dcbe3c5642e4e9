"""The reconciler: makes what connectors run match what the intents say."""
