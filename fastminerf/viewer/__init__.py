"""The web preview (``fastminerf preview``, ``fastminerf train --preview``): any identity,
any expression, any view, in a browser.

    browser (viser client) ──camera, controls──▶ server.PreviewServer
      ──request──▶ worker.RenderWorker (one thread, newest request per client wins)
      ──render_view──▶ uint8 image ──background image──▶ browser

Modules, in that order: ``sequences`` (driving expression sequences), ``state`` (what to
render: identity, expression, mesh), ``camera`` (viser camera → our camera), ``worker``
(render thread, low resolution while moving), ``timeshare`` (rendering between training
steps), ``gui`` (the controls), ``server`` (wiring), ``live`` (training with a preview).
viser is imported only when a server starts (the ``preview`` extra).
"""
