-- One database per stateful service (their tables share names): see docs/operations.md.
CREATE DATABASE baton_dispatcher;
CREATE DATABASE baton_task_results;
