"""ringscope: finds collusion and abuse networks in live-shopping marketplaces."""

__version__ = "0.1.0"
