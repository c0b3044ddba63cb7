"""gridwatch pipeline: settings, envelope, ingest core, faust app, embedded broker."""
