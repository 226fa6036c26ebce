"""The pure core of crontask.

All the functions here are purely data-manipulative and computational: no I/O, no clock (the
current time is always passed in), no threads, no framework imports. Everything else depends on
this package; it depends on nothing but the standard library and pydantic.
"""
