"""Progress: reports from tasks (``reporter``), the scheduler's live state (``plugin``) and
the client's terminal view (``views``)."""
