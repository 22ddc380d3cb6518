"""The job system: job model, schedules, catalog, store, dispatch and worker pools."""
