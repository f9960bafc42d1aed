"""Vision: fiducial markers, natural features, geometry."""
