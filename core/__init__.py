"""kehu's platform core. `create_app` is the Flask application factory."""


def create_app(test_config=None, **kwargs):
    from core.app import create_app as factory
    return factory(test_config, **kwargs)
