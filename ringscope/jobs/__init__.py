"""The periodic detection run: load -> detect -> diff -> write back."""
