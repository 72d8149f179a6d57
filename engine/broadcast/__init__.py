"""Broadcasts (issue 17): notices to many people, never in the way of an emergency page.

Pure parts: :mod:`~engine.broadcast.model` (the request and the records),
:mod:`~engine.broadcast.expand` (registry -> recipients -> messages),
:mod:`~engine.broadcast.policy` (quiet hours, expiry), :mod:`~engine.broadcast.progress`
(reports -> progress and the time left). Adapters: :mod:`~engine.broadcast.publish`
(Kafka) and :mod:`~engine.broadcast.cli` (``engine broadcast``). The radio gateway sends
the messages at the lowest priority (:mod:`engine.radio.gateway`).
"""
