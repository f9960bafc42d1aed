"""Onboard autonomy (ROS-free): mode state machine, fault monitor, battery model, docking.

- :mod:`.modes`: ``transition(state, event, guards, t)``, the mode machine;
- :mod:`.faults`: ``evaluate_faults`` (watchdogs, collisions, localization, battery) and
  ``fault_events`` (edge-triggered events for the mode machine);
- :mod:`.battery`: ``battery_step`` (drain with fan effort + base load, charge when docked);
- :mod:`.docking`: ``start_docking`` / ``start_undocking`` / ``docking_step``;
- :mod:`.commands`: ``validate_goal`` (frame, finite numbers, keep-in, keep-out);
- :mod:`.supervisor`: ``handle_request`` / ``tick``: all of the above plus the GNC loop, the
  one object a ROS node or the headless harness drives;
- :mod:`.params`: ``load_autonomy_params`` (``data/autonomy.yaml``).

docs/autonomy.md describes the modes, thresholds and faults.
"""
