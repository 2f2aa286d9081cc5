"""Hot reload: SIGHUP or a changed rule file -> new rules compiled off the hot path, swapped in whole."""
