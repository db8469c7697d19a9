"""`dockyard compose`: the Compose Specification's model (pure parsing) and an orchestrator that
talks only to the Engine API through dockyard.client, like Docker Compose."""
