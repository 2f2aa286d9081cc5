"""One input line -> a view with canonical ECS fields."""
