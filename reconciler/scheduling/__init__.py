"""The scheduler seam: one job per task, firing at the task's slots.

``base`` holds the contract, ``memory`` a twin driven by a fake clock, ``apscheduler`` the
production implementation and the only module of crontask that imports APScheduler.
"""
