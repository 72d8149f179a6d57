"""Planning for the bureau (issue 16): coverage of the area and its people by key zone
teams hour by hour, where one more zone would help most, and plan changes replayed
on recorded incidents. Pure computations over the registry, the plan and the spatial
index; the commands in :mod:`engine.planning.cli` read files or Kafka and write reports.
"""
