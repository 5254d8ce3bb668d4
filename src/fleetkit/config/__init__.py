"""Fleet configuration: typed models and the loader that turns fleet.yaml into them."""
