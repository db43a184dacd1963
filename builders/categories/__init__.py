"""One module per shift category; importing a module registers its distribution builders."""
