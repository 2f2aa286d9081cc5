"""Source text -> rule model: one translator per format. Imports eql / sigma, never hyperscan."""
