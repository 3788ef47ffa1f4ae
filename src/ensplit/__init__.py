"""ensplit: one wide network, an ensemble of thinner ones, or a parameter-sharing ensemble?"""

__version__ = "0.1.0"
