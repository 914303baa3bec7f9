"""The /api/v1/comfyui gateway server (`comfydesk serve`). Not built yet: see the issue tracker."""
