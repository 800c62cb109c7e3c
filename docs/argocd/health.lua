-- Argo CD health of a tenancy.tenantops.io Tenant, from the conditions tenant-operator writes
-- (api/v1alpha1/conditions.go). The operator sets Stalled=True while a person must act (a part
-- failing, stale or unverified backups, an invalid spec) and Reconciling=True while it is
-- still provisioning; Ready carries the message that names the part. Written for Argo CD's
-- Lua VM without its standard libraries (base and table only, as argocd-cm scripts run).
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

-- message is Ready's message, which names the parts that are not ready, else fallback's.
local function message(fallback)
  local ready = condition("Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.message
  end
  if fallback ~= nil and fallback.message ~= nil then
    return fallback.message
  end
  return ""
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "The tenant is being deleted"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for tenant-operator to report the tenant's status"
  return hs
end

-- Conditions of an older generation describe a spec that is gone.
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for tenant-operator to reconcile generation " .. obj.metadata.generation
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled)
  return hs
end

local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = message(reconciling)
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready)
  return hs
end
if ready ~= nil and ready.status == "False" then
  -- Written by an operator older than Reconciling and Stalled: the phase tells them apart.
  if obj.status.phase == "Provisioning" then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = message(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for tenant-operator to report the tenant's status"
return hs
