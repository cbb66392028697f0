"""The alert path: rules (pure), incident planning (pure), the state store, delivery."""
