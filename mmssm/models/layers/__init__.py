from .bimamba import BiMambaMixer

__all__ = ['BiMambaMixer']
